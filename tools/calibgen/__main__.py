"""``python -m tools.calibgen [--out DIR] [--calib-images N] ...`` from the repository root."""

from .build import main

if __name__ == "__main__":
    main()
