"""Contacts (issue 21): the 治安户长, grid workers, township duty officers and the
county 综治中心 duty desk an escalation notifies. See hub/contacts/tables.py for
what is stored and why so little, and docs/escalation.md."""
