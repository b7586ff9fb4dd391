"""Music for a plan segment: prompt parsing, styles, the procedural composer, SoundFont rendering,
polish, and the generator backends. See docs/music.md."""
