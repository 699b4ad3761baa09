"""`python -m dlcourse ...` is `dlcourse-train ...`."""

from dlcourse.app import main

main()
