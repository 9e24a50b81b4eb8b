"""The ``nwb-lfads`` command line (installed as ``nwb_lfads.cli``).

One file per command (``cmd_<name>.py``), each defining ``command``; heavy modules (jax,
pynwb) are imported inside the command functions so that ``--help`` stays instant.
"""
