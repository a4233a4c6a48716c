"""The HTML report: figures (matplotlib, headless) and one self-contained index.html."""
