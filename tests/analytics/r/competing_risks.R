# R's Aalen-Johansen estimates for tests/analytics/test_competing_risks.py.
# Regenerate: Rscript tests/analytics/r/competing_risks.R > tests/analytics/r/competing_risks.r.json
suppressPackageStartupMessages({library(survival); library(jsonlite)})
cases <- list(
  # ties of every kind: events with censorings (t = 1, 5), an event with a competing event (t = 3)
  ties = data.frame(time = c(1, 1, 1, 2, 2.5, 3, 3, 4, 5, 5, 6, 7, 8, 9, 10),
                    status = c(1, 1, 0, 2, 1, 1, 2, 0, 1, 0, 1, 2, 1, 0, 1)),
  # a competing event tied with a censoring, and the last record censored
  competing_censored = data.frame(time = c(0.5, 1.25, 1.25, 2, 2, 2, 3.5, 4, 4, 6),
                                  status = c(1, 2, 0, 1, 1, 2, 0, 1, 2, 0)),
  # no competing event: the incidence is 1 - Kaplan-Meier
  no_competing = data.frame(time = c(2, 3, 3, 5, 8, 8, 9, 12),
                            status = c(1, 1, 0, 1, 0, 1, 1, 0)),
  # the ICANS demo (demo/icans.py), days from the first IDM: 12 remissions and IC01's death
  # (8 days 4 hours after its first IDM) before remission
  icans_demo = data.frame(time = c(196 / 24, 3, 1, 2, 1, 1, 1, 7, 4, 1, 2, 1, 1),
                          status = c(2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
)
out <- lapply(cases, function(d) {
  d$state <- factor(d$status, levels = 0:2, labels = c("censored", "event", "competing"))
  fit <- survfit(Surv(time, state) ~ 1, data = d)
  pstate <- fit$pstate
  colnames(pstate) <- fit$states
  list(data = d[, c("time", "status")], time = fit$time, n_risk = fit$n.risk[, 1],
       incidence = unname(pstate[, "event"]),
       competing_incidence = unname(pstate[, "competing"]))
})
out$r_version <- R.version.string
out$survival_version <- as.character(packageVersion("survival"))
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
