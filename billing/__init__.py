"""Billing: usage metering, price plans, monthly invoices (PDF, CSV, XLSX)."""
