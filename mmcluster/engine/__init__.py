from .hooks import *  # noqa: F401,F403
from .optim_constructor import CompilableOptimWrapperConstructor  # noqa: F401
