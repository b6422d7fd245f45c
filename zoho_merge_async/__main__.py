"""Run the `zoho-merge` command as `python -m zoho_merge_async`."""

import sys

from zoho_merge_async._cli import main

if __name__ == "__main__":
    sys.exit(main())
