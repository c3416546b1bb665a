# R as the oracle for tests/analytics/test_against_r.py: reads a JSON list of cases on stdin,
# runs R's own functions on each (survival, nnet, stats; a plain-R greedy matcher with MatchIt's
# nn_matchC rule) and writes one JSON result per case. One R process serves a whole batch.
# A case: {"kind": ..., "data": {column: [values, null = NA]}, ...options}.
suppressPackageStartupMessages({library(survival); library(nnet); library(jsonlite)})

frame <- function(case) as.data.frame(lapply(case$data, function(v) as.numeric(unlist(lapply(v, function(x) if (is.null(x)) NA else x)))))

# Runs f, returning list(value, warnings) or list(error = message).
guarded <- function(f) {
  warned <- character()
  value <- tryCatch(
    withCallingHandlers(f(), warning = function(w) {
      warned <<- c(warned, conditionMessage(w)); invokeRestart("muffleWarning")
    }),
    error = function(e) structure(conditionMessage(e), class = "failed")
  )
  if (inherits(value, "failed")) return(list(error = unclass(value), warnings = warned))
  c(value, list(warnings = warned))
}

km <- function(case) {
  d <- frame(case)
  fit <- survfit(Surv(t, e) ~ g, data = d, timefix = case$timefix)
  groups <- rep(sub("^g=", "", names(fit$strata)), fit$strata)
  table <- summary(fit)$table
  list(group = groups, time = fit$time, surv = fit$surv, std_err = fit$std.err,
       lower = fit$lower, upper = fit$upper, median = unname(table[, "median"]),
       median_lower = unname(table[, "0.95LCL"]), median_upper = unname(table[, "0.95UCL"]))
}

logrank <- function(case) {
  d <- frame(case)
  # survdiff's timefix is its default; survival 3.5-3 cannot take it as an argument (its
  # match.call passes it on to model.frame), so only timefix = TRUE is asked of it.
  fit <- survdiff(Surv(t, e) ~ g, data = d)
  list(chisq = fit$chisq, p = pchisq(fit$chisq, length(fit$n) - 1, lower.tail = FALSE),
       observed = fit$obs, expected = fit$exp)
}

cox <- function(case) {
  d <- frame(case)
  formula <- as.formula(paste("Surv(t, e) ~", paste(case$covariates, collapse = " + ")))
  fit <- coxph(formula, data = d, ties = case$ties, timefix = case$timefix)
  s <- summary(fit)$coefficients
  zph <- tryCatch(cox.zph(fit)$table[, "chisq"], error = function(e) NULL)
  list(coef = unname(coef(fit)), se = unname(s[, "se(coef)"]), p = unname(s[, "Pr(>|z|)"]),
       loglik = fit$loglik[2], zph = unname(zph))
}

logistic <- function(case) {
  d <- frame(case)
  formula <- as.formula(paste("y ~", paste(case$covariates, collapse = " + ")))
  # Iterated to convergence (glm's default epsilon 1e-8 stops a few digits short on near-separation).
  fit <- glm(formula, family = binomial, data = d, control = glm.control(epsilon = 1e-14, maxit = 100))
  s <- summary(fit)$coefficients
  list(coef = unname(coef(fit)), se = unname(s[, "Std. Error"]), converged = fit$converged)
}

multinomial <- function(case) {
  d <- frame(case)
  d$y <- relevel(factor(d$y), ref = "0")
  formula <- as.formula(paste("y ~", paste(case$covariates, collapse = " + ")))
  # Run to convergence (R's default maxit = 100 can stop short on near-separated data).
  fit <- multinom(formula, data = d, trace = FALSE, maxit = 10000, reltol = 1e-14, abstol = 1e-30)
  used <- model.frame(formula, data = d)  # the complete cases multinom fitted
  polished <- newton_polish(model.matrix(formula, used), as.integer(model.response(used)), nlevels(d$y),
                            as.vector(t(coef(fit))))
  list(coef = polished$coef, multinom_coef = as.vector(t(coef(fit))), levels = fit$lev,
       converged = fit$convergence == 0 && polished$converged)
}

# multinom's BFGS stops where the log-likelihood is flat, short of the maximum: seen 3e-4 relative
# off on a coefficient whose log-likelihood was 1.2e-9 below the maximum, and at 12 on a term that
# quasi-separates (the MLE is infinite). Newton steps on the exact log-likelihood from multinom's
# estimates (step halving; R's solve) go on to the maximum, or keep growing along a separating
# direction, which the test reads as drift.
newton_polish <- function(X, y, levels, start) {
  p <- ncol(X); J <- levels - 1
  observed <- outer(y, seq_len(levels), "==") * 1
  probabilities <- function(b) {
    eta <- cbind(0, X %*% matrix(b, ncol = J)); P <- exp(eta - apply(eta, 1, max)); P / rowSums(P)
  }
  loglik <- function(b) sum(log(probabilities(b)[observed == 1]))
  b <- start
  for (iteration in 1:50) {
    P <- probabilities(b)[, -1, drop = FALSE]
    score <- as.vector(crossprod(X, observed[, -1, drop = FALSE] - P))
    information <- matrix(0, p * J, p * J)
    for (j in 1:J) for (k in 1:J) {
      information[(j - 1) * p + 1:p, (k - 1) * p + 1:p] <- crossprod(X, X * (P[, j] * ((j == k) - P[, k])))
    }
    step <- tryCatch(solve(information, score), error = function(e) NULL)
    if (is.null(step)) return(list(coef = b, converged = FALSE))
    before <- loglik(b)
    halvings <- 0
    while (loglik(b + step) < before && halvings < 50) { step <- step / 2; halvings <- halvings + 1 }
    b <- b + step
    if (max(abs(step)) <= 1e-10 * (1 + max(abs(b)))) return(list(coef = b, converged = TRUE))
  }
  list(coef = b, converged = FALSE)
}

# MatchIt's nearest-neighbour rule in plain R: all units stably sorted by distance; treated units
# in descending propensity score (stable); the first free control left and right of the treated
# unit's place; equal gaps go left; caliper = caliper × sd(distance); ratio passes skip units
# left unmatched by an earlier pass.
match_nearest <- function(case) {
  d <- frame(case)
  formula <- as.formula(paste("z ~", paste(case$covariates, collapse = " + ")))
  complete <- d[complete.cases(d[, c("id", "z", case$covariates)]), ]
  fit <- glm(formula, family = binomial, data = complete)
  lp <- unname(predict(fit, type = "link"))
  ps <- unname(fitted(fit))
  # The pairs are judged on the distances the library computed (case$distance): where two gaps
  # are equal in exact arithmetic (the logit of whole-number covariates) the last bit of each
  # implementation's sums decides, so R's own scores are compared separately, to 1e-6.
  dist <- as.numeric(unlist(case$distance))
  width <- if (is.null(case$caliper)) Inf else case$caliper * sd(dist)
  sorted <- order(dist, method = "radix")
  place <- integer(length(dist)); place[sorted] <- seq_along(dist)
  is_control <- complete$z[sorted] == 0
  taken <- rep(FALSE, length(dist))
  treated <- which(complete$z == 1)
  active <- treated[order(-ps[treated], method = "radix")]
  pairs <- NULL
  for (r in seq_len(case$ratio)) {
    still <- integer()
    for (i in active) {
      left <- place[i] - 1
      while (left >= 1 && (!is_control[left] || taken[left])) left <- left - 1
      right <- place[i] + 1
      while (right <= length(dist) && (!is_control[right] || taken[right])) right <- right + 1
      gap_left <- if (left >= 1) dist[i] - dist[sorted[left]] else Inf
      gap_right <- if (right <= length(dist)) dist[sorted[right]] - dist[i] else Inf
      pick <- if (gap_left <= gap_right) left else right
      gap <- min(gap_left, gap_right)
      if (!is.finite(gap) || gap > width) next
      taken[pick] <- TRUE
      pairs <- rbind(pairs, c(complete$id[i], complete$id[sorted[pick]]))
      still <- c(still, i)
    }
    active <- still
  }
  list(treated = pairs[, 1], control = pairs[, 2], ps = ps, id = complete$id)
}

table_one <- function(case) {
  d <- frame(case)
  out <- list()
  for (name in case$continuous) {
    v <- d[!is.na(d[[name]]), c(name, "g")]
    x0 <- v[[name]][v$g == 0]; x1 <- v[[name]][v$g == 1]
    out[[name]] <- list(p = wilcox.test(x0, x1)$p.value,
                        q0 = unname(quantile(x0, c(.25, .5, .75))), q1 = unname(quantile(x1, c(.25, .5, .75))),
                        smd = (mean(x1) - mean(x0)) / sqrt((var(x1) + var(x0)) / 2))
  }
  for (name in c(case$categorical, case$exact)) {
    v <- d[!is.na(d[[name]]), c(name, "g")]
    counts <- table(v[[name]], v$g)
    # A variable with one value left (or a group with none) has no test: chisq.test would run a
    # goodness-of-fit test of the one row instead, and fisher.test stops. The table shows NA.
    p <- if (nrow(counts) < 2 || ncol(counts) < 2) NA
         else if (name %in% case$exact) fisher.test(counts, workspace = 2e8)$p.value
         else chisq.test(counts)$p.value
    out[[name]] <- list(p = p)
  }
  out
}

# An r×c case asks for R's default workspace: where FEXACT stops there ("FEXACT error 6/7/30/501
# ... workspace"), `guarded` returns list(error = message) and the test accepts an answer or a
# refusal naming simulate_p_value.
fisher <- function(case) {
  counts <- matrix(unlist(case$table), nrow = length(case$table), byrow = TRUE)
  test <- if (isTRUE(case$default_workspace)) fisher.test(counts) else fisher.test(counts, workspace = 2e8)
  list(p = test$p.value)
}

wilcoxon <- function(case) {
  x <- as.numeric(unlist(case$x)); y <- as.numeric(unlist(case$y)); d <- as.numeric(unlist(case$d))
  list(rank_sum = wilcox.test(x, y)$p.value, signed_rank = wilcox.test(d)$p.value)
}

unlisted <- function(case) {
  for (name in c("covariates", "continuous", "categorical", "exact")) case[[name]] <- unlist(case[[name]])
  case
}

kinds <- list(km = km, logrank = logrank, cox = cox, logistic = logistic, multinomial = multinomial,
              match = match_nearest, table_one = table_one, fisher = fisher, wilcoxon = wilcoxon)
cases <- fromJSON(file("stdin"), simplifyVector = FALSE)
results <- lapply(cases, function(case) guarded(function() kinds[[case$kind]](unlisted(case))))
cat(toJSON(results, digits = NA, auto_unbox = TRUE, na = "null", null = "null"))
