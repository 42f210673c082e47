"""Near-duplicate detection that survives resizing, recompression, crops, mirroring and borders.

``signature`` reduces a photo to what the detector keeps (a 64x64 grey thumbnail and the box
inside a uniform border), ``hashes`` turns it into 64-bit box hashes (the stored centre
hashes and a query's crop/mirror probes), ``verify`` is the second-stage check.
"""
