"""Browser, dispatcher, admin and gateway actors."""
