import sys

from agent.client.cli import main

sys.exit(main())
