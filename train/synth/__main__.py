"""`python -m train.synth ...`: the synthetic dataset generator's command line."""

from train.synth.cli import main

raise SystemExit(main())
