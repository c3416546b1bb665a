# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: install run test lint bench demo-passwords clean-db

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

## Set up (once), migrate, load the demo studies if the database is empty, create demo accounts, serve.
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo --if-empty
	$(BIN)/python manage.py create_demo_accounts
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

## The whole test suite (SQLite by default; PostgreSQL when DATABASE_URL is set).
test: install
	$(BIN)/python manage.py check
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run

## Speed and memory benchmarks (not part of `make test`).
bench: install
	$(BIN)/python benchmarks/run_all.py

demo-passwords: install
	$(BIN)/python manage.py create_demo_accounts --reset-passwords
