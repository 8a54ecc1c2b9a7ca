"""Optional bridges to the tools ML engineers already log to; each needs its own extra and
imports it only when used (``pip install 'metatune[tensorboard]'``)."""
