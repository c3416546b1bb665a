# R's side of benchmarks/bench_fisher_vs_r.py: fisher.test(x) at its default workspace on each
# table of a JSON file (a list of tables, each a list of rows). Prints a JSON list of
# {"p": ..., "seconds": ...}, or {"error": message} where FEXACT stops. Timed as
# bench_stats_vs_r.R times its steps: CPU seconds of the call alone, a warm-up, then the median of
# 3 measurements of >= 0.1 s each.
suppressPackageStartupMessages(library(jsonlite))

cpu <- function() sum(proc.time()[c("user.self", "sys.self")])

once <- function(f, reps) {
  start <- cpu()
  for (i in seq_len(reps)) f()
  cpu() - start
}

timed <- function(f) {
  warm_up <- once(f, 1)
  if (warm_up >= 1) return(median(c(warm_up, once(f, 1), once(f, 1))))
  reps <- 1
  repeat {
    elapsed <- once(f, reps)
    if (elapsed >= 0.1) break
    reps <- reps * (if (elapsed <= 0.01) 10 else 2)
  }
  median(c(elapsed, once(f, reps), once(f, reps))) / reps
}

tables <- fromJSON(commandArgs(trailingOnly = TRUE)[1], simplifyVector = FALSE)
results <- lapply(tables, function(rows) {
  x <- matrix(unlist(rows), nrow = length(rows), byrow = TRUE)
  tryCatch(
    list(p = fisher.test(x)$p.value, seconds = timed(function() fisher.test(x))),
    error = function(e) list(error = conditionMessage(e))
  )
})
cat(toJSON(results, digits = NA, auto_unbox = TRUE))
