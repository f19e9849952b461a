"""`python -m llmlab` is the `llmlab` command."""

import sys

from llmlab.cli import main

sys.exit(main())
