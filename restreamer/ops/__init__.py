"""Operations: statistics, Prometheus metrics and notifications.  They read the
core's counters; the data path never calls into them."""
