"""Demo data: the three seed cohorts (LM from its published table, NPSLE and ICANS generated)."""
