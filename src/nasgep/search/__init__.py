"""The NASGEP search (SPEC section 3).

- :mod:`.state`      the search state as plain, JSON-serialisable data
- :mod:`.settings`   :class:`~.settings.SearchSettings`, a search's sizes, rates and limits
- :mod:`.loop`       the generation loop (torch-free): driver, training, selection
- :mod:`.evaluator`  the :class:`~.evaluator.Evaluator` interface, a cheap evaluator for
                     tests, and executors (in-process, one worker per device)
- :mod:`.torch_evaluator`  the real evaluator: builds, trains, inherits weights
- :mod:`.breeding`   the breeding steps of a generation (gene pools, reduction and normal cells)
- :mod:`.checkpoint` atomic, checksummed per-generation checkpoints
- :mod:`.runner`     config -> search -> result files, tracking and progress
- :mod:`.sample`     the random-sampling baseline
"""
