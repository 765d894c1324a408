"""The Toolkit emulator does on save what Exchequer's Toolkit does, so that Exchequer's own stock
recalculation (esp_RecalculateStock) would agree with every figure it leaves behind."""

import datetime

import pytest

from exsync.exchequer import (
    ExchequerReader,
    NotADemoCompanyError,
    ToolkitEmulator,
    cancel_order,
    connect,
    dispatch_order,
    edit_account,
    insert_order_line,
    invoice_order,
    pick_order,
    recalculated_allocations,
    set_system_flags,
)
from exsync.exchequer.ledger import HOLD_CREDIT, committed_balance
from exsync.exchequer.mapping import DOC_TYPES, NOTE_RECORD_PREFIX, pascal_text
from exsync.exchequer.schema import DEMO_MARK_TABLE
from tests.exchequer.factories import customer, order


def _products(database, count):
    return [item.code for item in ExchequerReader(database=database).iter_stock_items()
            if item.type == "P" and item.in_stock > 20][:count]


def _accounts(database, count):
    return [account.code for account in ExchequerReader(database=database).iter_accounts()][:count]


def assert_allocations_agree_with_the_recalculation(database):
    """Each item's and location's allocated quantity is what esp_RecalculateStock computes from DETAILS."""
    by_item, by_location = recalculated_allocations(database)
    for item in ExchequerReader(database=database).iter_stock_items():
        assert item.allocated == pytest.approx(by_item.get(item.code, 0.0)), item.code
        for at in item.locations:
            assert at.allocated == pytest.approx(by_location.get((item.code, at.location), 0.0)), \
                (item.code, at.location)


def assert_line_numbers_are_distinct(database):
    with database.transaction(write=False) as cursor:
        rows = [tuple(row) for row in cursor.run("SELECT {lines.folio}, {lines.abs_line_no} FROM {lines}").fetchall()]
    assert len(rows) == len(set(rows)), "a document has two lines with the same tlABSLineNo"
    assert all(abs_no > 0 for _, abs_no in rows)


def test_the_seeded_company_is_consistent_from_the_start(seeded):
    assert_allocations_agree_with_the_recalculation(seeded)
    assert_line_numbers_are_distinct(seeded)


def test_allocations_stay_what_the_recalculation_computes_through_an_orders_life(seeded):
    first, second, third = _products(seeded, 3)
    account, other = _accounts(seeded, 2)
    toolkit = ToolkitEmulator(database=seeded)
    imported = [toolkit.create_sales_document(order(f"woo-order:{n}", account, [
        (first, 2, 10.0, "MAI"), (second, 1 + n, 4.0, "W02"), ("", 1, 4.95, "")], your_ref=str(n))).reference
        for n in range(1, 5)]
    quote = toolkit.create_sales_document(order("woo-order:9", other, [(third, 5, 2.0, "MAI")], doc_type="SQU"))
    pick_order(seeded, imported[0])
    dispatch_order(seeded, imported[0])  # picked, then delivered in full
    dispatch_order(seeded, imported[1], {2: 1})  # part of one line
    invoice_order(seeded, imported[1])
    insert_order_line(seeded, imported[2], position=1, stock_code=third, qty=3, unit_net_price=1.0)
    cancelled = cancel_order(seeded, imported[3])
    assert cancelled == 2 + 5 + 1  # the last order: 2, 1 + 4 and the carriage line
    assert_allocations_agree_with_the_recalculation(seeded)
    assert_line_numbers_are_distinct(seeded)

    reader = ExchequerReader(database=seeded)
    delivered = reader.document(imported[0])
    assert delivered.header.run_no == -42 and delivered.header.total_order_os == 0
    assert all(line.stock_deduct_qty == 0 for line in delivered.lines)
    partly = reader.document(imported[1])
    assert [line.stock_deduct_qty for line in partly.lines] == [2, 3 - 1, 0]
    assert reader.document(quote.reference).lines[0].stock_deduct_qty == 0, "quotes allocate only under QUAllocFlg"
    assert reader.document(imported[3]).header.total_order_os == 0


def test_a_saved_order_carries_what_the_toolkit_sets(seeded):
    code = _products(seeded, 1)[0]
    account = _accounts(seeded, 1)[0]
    before = ExchequerReader(database=seeded).stock_item(code)
    reference = ToolkitEmulator(database=seeded).create_sales_document(
        order("woo-order:5", account, [(code, 3, 10.0, "MAI"), ("", 1, 4.95, "")])).reference
    with seeded.transaction(write=False) as cursor:
        header = cursor.run(
            "SELECT {documents.cust_supp}, {documents.run_no}, {documents.year}, {documents.period}, "
            "{documents.folio}, {documents.next_line_no}, {documents.total_order_os}, {documents.vat_analysis_S}, "
            "{documents.originator}, {documents.creation_date} FROM {documents} WHERE {documents.our_ref} = ?",
            (reference,)).fetchone()
        lines = cursor.run(
            "SELECT {lines.abs_line_no}, {lines.doc_type}, {lines.line_type}, {lines.qty_mul}, "
            "{lines.stock_deduct_qty}, {lines.year}, {lines.location}, {lines.run_no} FROM {lines} "
            "WHERE {lines.folio} = ? ORDER BY {lines.line_no}", (header[4],)).fetchall()
        counters = dict(cursor.run("SELECT {counters.counter_type}, {counters.next_number} FROM {counters}").fetchall())
        notes = cursor.run("SELECT {bom.note_folio}, {bom.note_line} FROM {bom} WHERE {bom.record_prefix} = ?",
                           (NOTE_RECORD_PREFIX,)).fetchall()
        balance = committed_balance(cursor, account)
    assert header[:4] == ("D", -40, 126, 11)
    assert header[4] == counters["AFL"] - 1, "the folio comes from the AFL counter row"
    assert (header[5], header[6], header[7]) == (3, 34.95, 6.99)
    assert header[8] == "exsync" and len(header[9]) == 8
    assert [tuple(line) for line in lines] == [(1, DOC_TYPES["SOR"], "O", 1.0, 3.0, 126, "MAI", -40),
                                               (2, DOC_TYPES["SOR"], "O", 1.0, 0.0, 126, "", -40)]
    assert [pascal_text(folio) for folio, _ in notes][-1] == str(header[4])
    assert balance >= 34.95
    after = ExchequerReader(database=seeded).stock_item(code)
    assert after.allocated == before.allocated + 3


def test_quotes_allocate_when_the_company_says_so(seeded):
    code = _products(seeded, 1)[0]
    set_system_flags(seeded, quotes_allocate=True)
    before = ExchequerReader(database=seeded).stock_item(code).allocated
    toolkit = ToolkitEmulator(database=seeded)
    quote = toolkit.create_sales_document(order("q-1", _accounts(seeded, 1)[0], [(code, 4, 1.0, "MAI")],
                                                doc_type="SQU"))
    stored = ExchequerReader(database=seeded).document(quote.reference)
    assert stored.header.run_no == 0 and stored.lines[0].stock_deduct_qty == 4
    assert ExchequerReader(database=seeded).stock_item(code).allocated == before + 4


def test_an_order_over_the_credit_limit_is_saved_on_credit_hold(seeded):
    code = _products(seeded, 1)[0]
    toolkit = ToolkitEmulator(database=seeded)
    account = toolkit.create_account(external_key="woo-customer:1", details=customer()).reference
    with seeded.transaction() as cursor:
        cursor.run("UPDATE {accounts} SET {accounts.credit_limit} = 100 WHERE {accounts.code} = ?", (account,))
    small = toolkit.create_sales_document(order("woo-order:1", account, [(code, 1, 60.0, "MAI")]))
    large = toolkit.create_sales_document(order("woo-order:2", account, [(code, 1, 60.0, "MAI")]))
    reader = ExchequerReader(database=seeded)
    assert reader.document(small.reference).header.hold_flag == 0
    assert reader.document(large.reference).header.hold_flag == HOLD_CREDIT


def test_account_saves_stamp_the_account_as_the_toolkit_does(seeded):
    toolkit = ToolkitEmulator(database=seeded)
    code = toolkit.create_account(external_key="woo-customer:2", details=customer()).reference
    with seeded.transaction(write=False) as cursor:
        row = cursor.run("SELECT {accounts.sub_type}, {accounts.vat_code}, {accounts.last_used}, "
                         "{accounts.time_stamp}, {accounts.price_band} FROM {accounts} WHERE {accounts.code} = ?",
                         (code,)).fetchone()
    assert (row[0], row[1], row[4]) == ("C", "S", "A")
    assert row[2] == datetime.date.today().strftime("%Y%m%d") and len(row[3]) == 6
    edit_account(seeded, code, price_band=" ")
    assert ExchequerReader(database=seeded).account(code).price_band == "", "' ' is no band"


def test_direct_writes_to_a_company_that_is_not_a_demo_company_are_refused(seeded, dsn):
    with seeded.transaction() as cursor:
        cursor.execute(f"DELETE FROM {DEMO_MARK_TABLE.sql_name(seeded)}")
    with connect(dsn) as database:
        toolkit = ToolkitEmulator(database=database)
        with pytest.raises(NotADemoCompanyError, match="write_backend to toolkit"):
            toolkit.create_sales_document(order("woo-order:1", _accounts(database, 1)[0],
                                                [(_products(database, 1)[0], 1, 1.0, "MAI")]))
        with pytest.raises(NotADemoCompanyError):
            toolkit.update_account(_accounts(database, 1)[0], {"phone": "1"})
        with pytest.raises(NotADemoCompanyError):
            dispatch_order(database, "SOR000001")


def test_after_a_kit_sale_a_components_new_stock_shows_the_right_kit_figure(seeded):
    """Issue 12 §2: selling a kit allocates the kit's own stock row; a component's +1 then gives
    own free stock (negative) plus what the components could build, not the components alone."""
    from exsync.exchequer import adjust_stock
    from exsync.exchequer.rules import could_build

    reader = ExchequerReader(database=seeded)
    boms = reader.bom_components()
    levels = {level.code: level for level in reader.stock_levels()}
    kit = next(code for code, components in sorted(boms.items())
               if levels[code].could_build >= 3 and all(c.component_code not in boms for c in components))
    assert levels[kit].free == 0
    ToolkitEmulator(database=seeded).create_sales_document(order("woo-order:kit", _accounts(seeded, 1)[0],
                                                                 [(kit, 2, 50.0, "MAI")]))
    scarce = min((c for c in boms[kit] if c.component_type != "D"),
                 key=lambda c: levels[c.component_code].free / c.qty_used)
    adjust_stock(seeded, stock_code=scarce.component_code, location="MAI", qty=scarce.qty_used)
    after = {level.code: level for level in reader.stock_levels()}
    assert after[kit].free == -2, "the sale allocated the kit's own row"
    built = could_build(kit, boms=boms, free={code: level.free for code, level in after.items()})
    assert built == levels[kit].could_build + 1
    assert after[kit].could_build == built - 2


def test_with_deduct_bom_components_a_kits_shortfall_is_allocated_on_its_components(seeded):
    """DeductBOMComponents: the kit line allocates what the kit's own stock covers, the rest goes to its
    components as lines linked to the kit line; the recalculation still agrees."""
    from exsync.exchequer import adjust_stock

    reader = ExchequerReader(database=seeded)
    boms = reader.bom_components()
    kit = next(code for code, components in sorted(boms.items())
               if all(c.component_code not in boms for c in components))
    parts = [c for c in boms[kit] if c.component_type == "P"]
    set_system_flags(seeded, deduct_bom_components=True)
    adjust_stock(seeded, stock_code=kit, location="MAI", qty=1)  # one kit on the shelf
    before = {c.component_code: reader.stock_item(c.component_code).allocated for c in parts}
    reference = ToolkitEmulator(database=seeded).create_sales_document(
        order("woo-order:kit", _accounts(seeded, 1)[0], [(kit, 3, 50.0, "MAI")])).reference
    stored = reader.document(reference)
    assert (stored.lines[0].stock_code, stored.lines[0].stock_deduct_qty) == (kit, 1)
    linked = {line.stock_code: line.stock_deduct_qty for line in stored.lines[1:]}
    assert linked == {c.component_code: 2 * c.qty_used for c in parts}
    for c in parts:
        assert reader.stock_item(c.component_code).allocated == before[c.component_code] + 2 * c.qty_used
    assert stored.header.net_value == 150.0, "component lines carry no value"
    assert_allocations_agree_with_the_recalculation(seeded)
    assert_line_numbers_are_distinct(seeded)
