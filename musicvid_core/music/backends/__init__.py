"""Music generators (the MusicGenerator port). Registered by import string in config.GENERATORS and
imported on first use, so a backend's heavy dependencies load only when it is chosen."""
