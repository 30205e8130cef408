import sys
from pathlib import Path

# The gateway tests' helpers (real uvicorn servers, the fake upstream) live beside them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
