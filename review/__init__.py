"""Review workflow: section status (draft → submitted → verified → locked), e-signatures, data queries."""
