"""Files on disk: everything gmmdiff writes and reads, and nothing else.

- :mod:`gmmdiff.io.files`   -- atomic writes, JSON/NPY/NPZ readers that check what they
  read, :class:`~gmmdiff.io.files.StorageError`;
- :mod:`gmmdiff.io.schemas` -- what each JSON file holds, checked by its one reader;
- :mod:`gmmdiff.io.rundir`  -- run directories: a configuration and its results;
- :mod:`gmmdiff.io.locks`   -- one live process per run directory or sweep unit.

May import: the base modules (:mod:`gmmdiff.backend`, :mod:`gmmdiff.version`).
"""
