import os

# The interpreter must be chosen before triton is imported anywhere; without CUDA it is the only way.
os.environ.setdefault("TRITON_INTERPRET", "1")
