"""Reports: live progress, summary tables and plots."""
