"""Table definitions of the three demo systems.

The fourth system, ``feedback`` (NPS/CSAT surveys), is not read as a
database: ``custview demo`` serves it over HTTP (see ``feedback_service``)
and custview reaches it through the REST connector.

Written with SQLAlchemy Core so the same tables can be created on SQLite
(the embedded demo) and copied onto PostgreSQL or MariaDB (the multi-engine
tests). Timestamps are UTC; the SQLite files store them as ISO text.

Indexes are the ones a real system of this kind has: on every foreign key
custview reads children by, and on the date of every dated relation (a
ticket's, order's, survey answer's creation, an opportunity's close date),
which support desks and shops index for their own date-window views.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

SYSTEMS = ("crm", "support", "sales", "feedback")


def _ts() -> list[Column[object]]:
    return [
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    ]


crm = MetaData()
Table(
    "accounts",
    crm,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("domain", String(200)),
    Column("industry", String(100)),
    Column("phone", String(50)),
    Column("billing_street", String(200)),
    Column("billing_city", String(100)),
    Column("billing_postcode", String(20)),
    Column("billing_country", String(2)),
    Column("owner", String(100)),
    *_ts(),
)
Table(
    "contacts",
    crm,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("email", String(254)),
    Column("phone", String(50)),
    Column("mobile", String(50)),
    Column("street", String(200)),
    Column("city", String(100)),
    Column("postcode", String(20)),
    Column("country", String(2)),
    Column("birth_date", Date),
    Column("lifecycle_stage", String(40)),
    Column("owner", String(100)),
    *_ts(),
    Index("ix_contacts_account_id", "account_id"),
)
Table(
    "leads",
    crm,
    Column("id", Integer, primary_key=True),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("company", String(200)),
    Column("email", String(254)),
    Column("phone", String(50)),
    Column("status", String(40)),
    Column("lead_source", String(40)),
    Column("owner", String(100)),
    *_ts(),
)
Table(
    "opportunities",
    crm,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id")),
    Column("contact_id", Integer, ForeignKey("contacts.id")),
    Column("name", String(200), nullable=False),
    Column("stage", String(40), nullable=False),
    Column("amount", Numeric(12, 2)),
    Column("currency", String(3)),
    Column("close_date", Date),
    Column("owner", String(100)),
    *_ts(),
    Index("ix_opportunities_contact_id", "contact_id"),
    Index("ix_opportunities_close_date", "close_date"),
)

support = MetaData()
Table(
    "organizations",
    support,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("domain", String(200)),
    *_ts(),
)
Table(
    "users",
    support,
    Column("id", Integer, primary_key=True),
    Column("organization_id", Integer, ForeignKey("organizations.id")),
    Column("name", String(200)),
    Column("email", String(254)),
    Column("phone", String(50)),
    Column("locale", String(10)),
    Column("time_zone", String(50)),
    Column("role", String(20), nullable=False),
    *_ts(),
)
Table(
    "tickets",
    support,
    Column("id", Integer, primary_key=True),
    Column("requester_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("organization_id", Integer, ForeignKey("organizations.id")),
    Column("subject", String(300), nullable=False),
    Column("status", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("channel", String(20), nullable=False),
    *_ts(),
    Column("solved_at", DateTime),
    Index("ix_tickets_requester_id", "requester_id"),
    Index("ix_tickets_created_at", "created_at"),
)
Table(
    "satisfaction_ratings",
    support,
    Column("id", Integer, primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("requester_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("score", String(10), nullable=False),
    Column("comment", Text),
    Column("created_at", DateTime, nullable=False),
    Index("ix_satisfaction_ratings_requester_id", "requester_id"),
)

sales = MetaData()
Table(
    "customers",
    sales,
    Column("id", Integer, primary_key=True),
    Column("email", String(254)),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("phone", String(50)),
    Column("street", String(200)),
    Column("city", String(100)),
    Column("postcode", String(20)),
    Column("country", String(2)),
    Column("accepts_marketing", Integer, nullable=False),
    *_ts(),
)
Table(
    "orders",
    sales,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("order_number", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
    *_ts(),
    Index("ix_orders_customer_id", "customer_id"),
    Index("ix_orders_created_at", "created_at"),
)
Table(
    "order_lines",
    sales,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("sku", String(40), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
    Index("ix_order_lines_order_id", "order_id"),
)
Table(
    "refunds",
    sales,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("reason", String(200)),
    Column("created_at", DateTime, nullable=False),
    Index("ix_refunds_order_id", "order_id"),
)

feedback = MetaData()
Table(
    "respondents",
    feedback,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False),
    Column("name", String(200)),
    *_ts(),
)
Table(
    "responses",
    feedback,
    Column("id", Integer, primary_key=True),
    Column("respondent_id", Integer, ForeignKey("respondents.id"), nullable=False),
    Column("survey", String(10), nullable=False),
    Column("score", Integer, nullable=False),
    Column("comment", Text),
    Column("channel", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_responses_respondent_id", "respondent_id"),
    Index("ix_responses_created_at", "created_at"),
)

METADATA: dict[str, MetaData] = {
    "crm": crm,
    "support": support,
    "sales": sales,
    "feedback": feedback,
}
