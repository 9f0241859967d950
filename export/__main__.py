import os
import sys

# Entry point only: keep TensorFlow's C++ start-up logs off stderr so errors stay one line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from export.cli import main  # noqa: E402

sys.exit(main())
