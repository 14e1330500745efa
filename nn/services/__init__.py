"""Application jobs shared by the command line and the dashboard: training, presets and the run
store."""
