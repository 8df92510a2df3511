import sys

from mlgitops.cli.main import main

sys.exit(main())
