"""Independent judges: networks outside the model (dlib's face detector, landmarks and face embedder, CC0
age/gender networks) that data preparation and evaluation both use; they import nothing above them."""
