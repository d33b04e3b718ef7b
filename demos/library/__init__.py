"""One module per demo; see demos/base.py for what a module declares."""
