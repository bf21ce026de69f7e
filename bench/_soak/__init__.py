"""The parts of ``bench/soak.py``: set-up, workload, chaos, and the checks that count losses.

Not a benchmark itself: ``make bench`` runs ``bench/*.py`` only.
"""
