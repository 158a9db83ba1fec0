import sys

from rayrollout.cli.main import main

sys.exit(main())
