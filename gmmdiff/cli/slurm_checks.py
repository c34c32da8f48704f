"""What a Slurm batch script may hold: the checks of ``gmmdiff-sweep --sbatch``.

Everything :mod:`gmmdiff.cli.slurm` writes into the script is checked here before
anything is written: every path and option value is text a shell script can carry (no
newline or other control character: one would end the line it is on and make the rest
a command; :func:`check_carriable`), and the shell lines quote each one
(``shlex.quote``); the values of ``#SBATCH`` lines, which sbatch parses itself, avoid
what Slurm's versions parse differently there (:func:`check_directive_value`) and are
quoted for sbatch (:func:`directive_value`); the files and directories the writer
creates must be new (the script) or writable (:func:`check_target`); the array's size
(:func:`array_size`), the cores of a task (:data:`MAX_CPUS_PER_TASK`) and the further
sbatch options (:func:`check_sbatch_options`) are within what Slurm takes.
"""
import os
import re

MAX_ARRAY_TASKS = 1001      # Slurm's default MaxArraySize: task ids 0 .. 1000
MAX_CPUS_PER_TASK = 1024    # more --cpus-per-task is a typo, not a node

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BARE = re.compile(r"[A-Za-z0-9_./%:=@,+-]+")
_NOT_IN_DIRECTIVES = '"\\#'         # Slurm's #SBATCH parsers treat them differently


def check_carriable(value, what):
    """``value``, a path or an option value the batch script will hold (``what``, its
    option, names it), if a shell script can carry it: UTF-8 text without a newline or
    another control character (a newline would end the line it is on, and what follows
    would run as a command). ValueError naming it otherwise."""
    bad = _CONTROL.search(value)
    if bad:
        name = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(
            bad.group(), f"the control character {bad.group()!r}")
        raise ValueError(f"{what} {value!r} holds {name}, which a batch script cannot carry "
                         "safely; choose a name without control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} is not valid UTF-8, which a batch script cannot "
                         "carry safely; choose another name") from None
    return value


def check_directive_value(value, what, hint=""):
    """``value`` if it can stand in a ``#SBATCH`` line (:func:`directive_value`):
    carriable (:func:`check_carriable`) and without a double quote, a backslash or a
    ``#``, which Slurm's versions parse differently there (measured on Slurm 22.05: a
    backslash before a space ends the option). ValueError naming it (``what``, and
    ``hint`` after the message) otherwise."""
    check_carriable(value, what)
    bad = next((c for c in value if c in _NOT_IN_DIRECTIVES), None)
    if bad is not None:
        raise ValueError(f"{what} {value} holds {bad!r}, which Slurm's #SBATCH lines cannot "
                         f"carry safely; choose a path without '\"', '\\' or '#'{hint}")
    return value


def directive_value(value):
    """``value`` (checked by :func:`check_directive_value`) as sbatch reads it back from
    a ``#SBATCH --option=VALUE`` line: bare where it is only letters, digits and
    ``_./%:=@,+-``, in double quotes otherwise (spaces, quotes, ``$``, backquotes: taken
    literally there; sbatch never runs a shell on them)."""
    return value if _BARE.fullmatch(value) else f'"{value}"'


def check_target(path, what, *, directory):
    """A path the batch script's writer will create, checked before anything is
    written: ``directory`` False: a new file (nothing may exist there, not even a
    dangling link) in an existing, writable directory; True: an existing writable
    directory, or a new one whose parent exists and is writable (never created
    through missing parents). ValueError naming ``what`` and the path otherwise."""
    parent = os.path.dirname(path)
    if os.path.lexists(path):
        if not directory:
            raise ValueError(f"{what} {path} exists; give a new file name (nothing is overwritten)")
        if not os.path.isdir(path):
            raise ValueError(f"{what} {path} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path} is not writable")
        return path
    if not os.path.isdir(parent):
        raise ValueError(f"{what} {path}: directory {parent} does not exist; create it first "
                         "(nothing is created through missing directories)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: directory {parent} is not writable")
    return path


def array_size(n_tasks, n_units):
    """The tasks of the array: ``n_tasks`` (``--array-tasks``) if given, else one per
    unit, at most :data:`MAX_ARRAY_TASKS`. ValueError for more tasks than units (a
    task beyond the last unit would have nothing to train) or than Slurm's default
    MaxArraySize allows."""
    if n_tasks is not None and n_tasks > n_units:
        raise ValueError(f"--array-tasks {n_tasks} is more than the sweep's {n_units} unit"
                         f"{'s' if n_units != 1 else ''}: a task beyond the last unit has nothing "
                         f"to train; accepted: 1 to {min(n_units, MAX_ARRAY_TASKS)}")
    if n_tasks is not None and n_tasks > MAX_ARRAY_TASKS:
        raise ValueError(f"--array-tasks {n_tasks} is more than Slurm's default MaxArraySize "
                         f"allows ({MAX_ARRAY_TASKS} tasks, ids 0 to {MAX_ARRAY_TASKS - 1}); "
                         f"accepted: 1 to {MAX_ARRAY_TASKS} (a task then trains several units)")
    return n_tasks or min(n_units, MAX_ARRAY_TASKS)


# sbatch options the script sets itself: --sbatch-option may not give them again
_OWN = {"array": "--array-tasks / --array-parallel", "time": "--time", "t": "--time",
        "cpus-per-task": "--cpus-per-task", "c": "--cpus-per-task", "output": None, "o": None,
        "error": None, "e": None, "signal": None, "open-mode": None, "chdir": None, "D": None,
        "ntasks": None, "n": None, "dependency": None, "d": None, "requeue": None, "a": None}
_OPTION = re.compile(r"^(--[A-Za-z][A-Za-z0-9-]*|-[A-Za-z])(=[^\n\r]*)?$")


def check_sbatch_options(options):
    """The ``--sbatch-option`` values, checked: each one sbatch option such as
    ``--partition=gpu`` or ``--account=lab`` on one line (no control character), none
    that the script sets itself; ValueError naming the first bad one."""
    for opt in options:
        m = _OPTION.match(opt)
        if m and _CONTROL.search(opt):
            check_carriable(opt, "--sbatch-option")
        if not m:
            raise ValueError(f"--sbatch-option {opt!r} is not one sbatch option; accepted: "
                             "'--name=value' or '--flag', such as --partition=gpu or --mem=16G")
        name = m.group(1).lstrip("-")
        if name in _OWN:
            instead = _OWN[name]
            raise ValueError(f"--sbatch-option {opt}: the script sets --{name} itself"
                             + (f"; use gmmdiff-sweep's {instead}" if instead else ""))
    return list(options)
