"""What the video tests' media say and where they cut (made in conftest.py). A module of its own: a test
importing ``conftest`` gets whichever test folder's conftest Python imported first under that name."""

TRAIN = "the train to london is late"
MEETING = "welcome to the meeting everyone"
GREEN = "my favourite colour is green"
CUTS = (3.0, 6.0)
FPS = 10
