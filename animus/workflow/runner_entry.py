"""``python -m animus.workflow.runner_entry <workflow id>``: the runner's entry point, kept tiny.

A worker forked from the supervisor's zygote runs its ``-m`` module afresh as
``__main__`` (runpy), though the zygote imported it already: that module's
code is compiled (no ``.pyc`` is written under ``PYTHONDONTWRITEBYTECODE``,
as in an editable install) or unmarshalled once per run. For the runner,
370 lines, that was 1-6 ms of every run; this module is a few lines, and the
runner itself comes preloaded. Importing this module does nothing: it runs
the runner only as ``__main__``.
"""

from animus.workflow.runner import main

if __name__ == "__main__":
    main()
