pytest_plugins = ["tests.support.fake_kube.plugin"]
