"""What `metatune demo` and `metatune demo-svm` run.

* `metatune.demos.pipeline`: EEIPU on a cached multi-stage ML pipeline, on a cost budget.
* `metatune.demos.svm`: an SVM on digits tuned by k-fold CV accuracy, a fixed number of trials.
* `metatune.demos.common`: what both share with each other and with the CLI (user-facing errors,
  output, storage and folder set-up, the optimizer check, the best trial and the plot).

Each demo takes its options as one frozen record and an `Output`; the CLI only parses and calls.
"""
