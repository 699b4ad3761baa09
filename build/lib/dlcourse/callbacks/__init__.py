"""Lightning callbacks specific to dlcourse (figures)."""
