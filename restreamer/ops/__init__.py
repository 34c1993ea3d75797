"""Operations: statistics, Prometheus metrics, notifications and the dashboard's
overview.  They read the streams through the core's read-only views
(:mod:`restreamer.core.view`); the data path never calls into them, and
:mod:`restreamer.assembly` wires them to the relay."""
