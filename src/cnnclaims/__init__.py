"""cnnclaims: the claims of "Exploring Feature Extraction with CNNs" as statistical tests."""

__version__ = "0.1.0"

CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
FROG = CLASSES.index("frog")
