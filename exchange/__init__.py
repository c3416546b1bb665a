"""Bulk import (the registry's layout and REDCap exports) and study exports (CSV, XLSX, SPSS, Stata)."""
