{
    "name": "Sales Pipeline",
    "version": "1.0.0",
    "summary": "Leads from every channel, deals through configurable funnels, workload, forecast",
    "author": "Birga contributors",
    "license": "LGPL-3",
    "category": "Sales",
    "depends": ["contacts"],
}
