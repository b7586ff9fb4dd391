"""Mixing: the ffmpeg filtergraph that places the music under the video, and the compose run."""
