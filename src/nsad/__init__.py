"""nsad: image anomaly detection trained on normal images with natural synthetic anomalies.

The package is organised by data flow: ``nsad.data`` reads images, ``nsad.synth`` turns normal
images into synthetic anomalous training examples, ``nsad.models`` maps images to anomaly maps,
``nsad.metrics`` turns maps and masks into numbers, and ``nsad.cli`` is the command line.
Importing ``nsad`` imports none of them, so ``nsad.metrics`` works without torch.
"""

__version__ = "0.1.0"
