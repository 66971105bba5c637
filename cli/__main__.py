import sys

from emotion_edge.main import main

sys.exit(main())
