"""Sub-commands of the ``nasgep`` CLI, one module each (see :mod:`nasgep.cli`)."""
