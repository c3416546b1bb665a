# R's side of benchmarks/bench_stats_vs_r.py: the same analysis steps on the same CSV files.
# Usage: Rscript --vanilla bench_stats_vs_r.R cohort_386.csv cohort_2000.csv ...
# Prints one JSON object {"<n>": {"<step>": seconds}}. Each step is timed in CPU seconds (user +
# system, from proc.time(); on a shared machine wall-clock time would count other processes' turns)
# around the call alone (not R's start-up, package loading or reading the CSV): one warm-up call, then the
# median of 3 measurements, each repeating the call until it takes 0.1 s or more (proc.time ticks
# in milliseconds) and dividing by the repetitions; a warm-up of 1 s or more counts as the first
# measurement. The Python side is timed the same way.
suppressPackageStartupMessages({library(survival); library(nnet); library(jsonlite)})
have_matchit <- suppressWarnings(requireNamespace("MatchIt", quietly = TRUE))

COVARIATES <- c("age", "sledai", "male", "headache", "psychosis", "mpp")
MODEL <- paste(COVARIATES, collapse = " + ")

cpu <- function() sum(proc.time()[c("user.self", "sys.self")])

once <- function(f, reps) {
  start <- cpu()
  for (i in seq_len(reps)) f()
  cpu() - start
}

timed <- function(f) {
  warm_up <- once(f, 1)  # lazy loading, as the Python side's first call
  # A warm-up of a second or more is itself the first run (what it would warm is lost in it).
  if (warm_up >= 1) return(median(c(warm_up, once(f, 1), once(f, 1))))
  reps <- 1
  repeat {
    elapsed <- once(f, reps)
    if (elapsed >= 0.1) break
    reps <- reps * (if (elapsed <= 0.01) 10 else 2)
  }
  median(c(elapsed, once(f, reps), once(f, reps))) / reps
}

smd <- function(x1, x0) (mean(x1) - mean(x0)) / sqrt((var(x1) + var(x0)) / 2)

propensity <- function(d) {
  fit <- glm(as.formula(paste("intrathecal ~", MODEL)), family = binomial, data = d)
  s <- summary(fit)$coefficients
  cbind(s, exp(s[, 1] - 1.959964 * s[, 2]), exp(s[, 1] + 1.959964 * s[, 2]))
}

# MatchIt's nearest neighbour on a logistic score, caliper 0.2 SD, largest score first (the
# library's defaults), then the matched rows and the standardized differences before and after.
matching <- function(d) {
  m <- MatchIt::matchit(as.formula(paste("intrathecal ~", MODEL)), data = d, method = "nearest",
                        distance = "glm", caliper = 0.2, m.order = "largest")
  matched <- MatchIt::match.data(m)
  sapply(COVARIATES, function(v) c(
    smd(d[[v]][d$intrathecal == 1], d[[v]][d$intrathecal == 0]),
    smd(matched[[v]][matched$intrathecal == 1], matched[[v]][matched$intrathecal == 0])))
}

km <- function(d) {
  fit <- survfit(Surv(time, event) ~ intrathecal, data = d)
  summary(fit)$table  # medians and their 95% limits, as the library's summary
}

logrank <- function(d) survdiff(Surv(time, event) ~ intrathecal, data = d)

# A Cox fit as the library returns it: coefficients, Wald table and cox.zph's test.
cox_fit <- function(d, terms) {
  fit <- coxph(as.formula(paste("Surv(time, event) ~", paste(terms, collapse = " + "))), data = d)
  list(summary(fit)$coefficients, cox.zph(fit)$table)
}

cox_univariable <- function(d) lapply(COVARIATES, function(v) cox_fit(d, v))
cox_multivariable <- function(d) cox_fit(d, COVARIATES)

# nnet::multinom with the Hessian, as summary() reports standard errors.
multinomial <- function(d) {
  d$response <- relevel(factor(d$response), ref = "0")
  fit <- multinom(as.formula(paste("response ~", MODEL)), data = d, trace = FALSE, Hess = TRUE)
  s <- summary(fit)
  z <- s$coefficients / s$standard.errors
  2 * pnorm(-abs(z))
}

# Table 1 as the library builds it: median [Q1, Q3] and wilcox.test for continuous variables;
# n (%) and chisq.test for categorical ones, fisher.test for `mpp`; SMD per row.
table_one <- function(d) {
  out <- list()
  for (v in c("age", "sledai")) {
    x0 <- d[[v]][d$intrathecal == 0]; x1 <- d[[v]][d$intrathecal == 1]
    q0 <- quantile(x0, c(.25, .5, .75)); q1 <- quantile(x1, c(.25, .5, .75))
    out[[v]] <- list(sprintf("%.2f [%.2f, %.2f]", q0[2], q0[1], q0[3]),
                     sprintf("%.2f [%.2f, %.2f]", q1[2], q1[1], q1[3]),
                     wilcox.test(x0, x1)$p.value, smd(x1, x0))
  }
  for (v in c("male", "headache", "psychosis", "sledai_band", "mpp")) {
    counts <- table(d[[v]], d$intrathecal)
    p <- if (v == "mpp") fisher.test(counts)$p.value else chisq.test(counts)$p.value
    percent <- sweep(counts, 2, colSums(counts), "/") * 100
    text <- sprintf("%d (%.1f%%)", counts, percent)
    smds <- sapply(rownames(counts), function(level) {
      indicator <- as.numeric(d[[v]] == level)
      smd(indicator[d$intrathecal == 1], indicator[d$intrathecal == 0])
    })
    out[[v]] <- list(text, p, smds)
  }
  out
}

steps <- list(propensity = propensity, km = km, logrank = logrank, cox_univariable = cox_univariable,
              cox_multivariable = cox_multivariable, multinomial = multinomial, table_one = table_one)
if (have_matchit) steps <- c(steps[1], list(matching = matching), steps[-1])

results <- list()
for (path in commandArgs(trailingOnly = TRUE)) {
  d <- read.csv(path)
  results[[as.character(nrow(d))]] <- lapply(steps, function(step) timed(function() step(d)))
}
cat(toJSON(results, auto_unbox = TRUE, digits = NA))
