"""Camera-frame vision: person detection on regions picked by motion."""
