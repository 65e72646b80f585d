"""Network parts shared by two or more methods."""
