"""Billing: usage metering, price plans, monthly invoices (PDF, CSV, XLSX), budgets.

How other apps use it:
- compute reports every billable change of a desktop through ``compute.hooks``:
  ``desktop_changed(desktop=..., at=..., reason=...)`` inside the transaction of the change,
  after saving the row; billing registers ``billing.services.desktop_changed`` in
  ``BillingConfig.ready``. Reporting the same state twice is harmless.
- compute asks ``compute.hooks.desktop_create_check(tenant=..., course=...)`` before making a
  desktop; billing registers ``billing.services.budget_enforce``, which raises Conflict
  ``budget_exhausted`` past a blocking budget. ``billing.selectors.budget_blocks(tenant, course)``
  answers the same question without raising.
- Operators: ``issue_invoices --month YYYY-MM [--json]``; beat issues last month's on the 1st.

Where things are: ``metering`` (what a desktop holds, cutting intervals at local midnights),
``pricing`` (rates that change on whole hours, inheritance, allowances, the rounding rule), ``services`` (writes),
``selectors`` (reads scoped to the user), ``documents`` (PDF/CSV/XLSX), ``locks`` (row locks).
"""
