"""Large exports built in the background (core/jobs) and handed to the person who asked."""
