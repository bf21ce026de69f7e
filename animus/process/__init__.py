"""OS processes: spawning, watching and stopping them (the layer under supervision).

``handle`` spawns a child in its own process group with a parent-death
signal, watches its exit and holds the one termination function; ``pdeathsig``
is the parent-death signal alone (import-light: every Animus process calls it
first); ``shutdown`` the three ways a child may be stopped; ``proc_stat`` a
process's create time read from ``/proc`` (psutil's value, without psutil's cost). Nothing here
imports ZeroMQ or knows what a plugin or a workflow is.
"""
