from tests.support.reports import evaluated, reported

__all__ = ["evaluated", "reported"]
